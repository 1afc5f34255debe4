#!/usr/bin/env python3
"""S3 and SNS-style topic calls against Ceph RGW for the test kit (crates/testkit/src/ceph.rs).

usage: s3ctl.py [--endpoint URL] [--access-key K] [--secret-key S] [--region R] COMMAND ...

  create-bucket B [--public-read]
  put B KEY --body TEXT [--public-read] [--content-type T]    prints {"seconds": <PUT duration>, "finished_at": <epoch>}
  get B KEY                                                   prints the body (signed request)
  delete B KEY
  create-topic NAME --push-endpoint URL --persistent true|false [--attr K=V ...]   prints {"arn": ...}
  put-many B KEY... [--body TEXT]   one connection, many PUTs
  notify B --topic-arn ARN [--events E ...] [--prefix P] [--id ID]

Connection settings also come from S3CTL_ENDPOINT, S3CTL_ACCESS_KEY, S3CTL_SECRET_KEY,
S3CTL_REGION. Every command prints one JSON line on success; errors exit non-zero with the
botocore message on standard error.
"""
import argparse
import json
import os
import sys
import time

import boto3
from botocore.config import Config

PUBLIC_READ_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "public-read",
            "Effect": "Allow",
            "Principal": {"AWS": ["*"]},
            "Action": ["s3:GetObject"],
            "Resource": ["arn:aws:s3:::{bucket}/*"],
        },
        {
            # Without it an anonymous GET of a missing (e.g. deleted) key gets 403, not 404.
            "Sid": "public-list",
            "Effect": "Allow",
            "Principal": {"AWS": ["*"]},
            "Action": ["s3:ListBucket"],
            "Resource": ["arn:aws:s3:::{bucket}"],
        },
    ],
}


def clients(args):
    kw = dict(
        endpoint_url=args.endpoint,
        region_name=args.region,
        aws_access_key_id=args.access_key,
        aws_secret_access_key=args.secret_key,
    )
    # Path-style addressing: caches and purges use http://host/<bucket>/<key>.
    cfg = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3})
    return boto3.client("s3", config=cfg, **kw), boto3.client("sns", config=cfg, **kw)


def main():
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--endpoint", default=env("S3CTL_ENDPOINT", "http://127.0.0.1:7480"))
    p.add_argument("--access-key", default=env("S3CTL_ACCESS_KEY", "RGWACCESS"))
    p.add_argument("--secret-key", default=env("S3CTL_SECRET_KEY", "RGWSECRET"))
    p.add_argument("--region", default=env("S3CTL_REGION", "default"))
    sub = p.add_subparsers(dest="cmd", required=True)

    c = sub.add_parser("create-bucket")
    c.add_argument("bucket")
    c.add_argument("--public-read", action="store_true")

    c = sub.add_parser("put")
    c.add_argument("bucket")
    c.add_argument("key")
    c.add_argument("--body", required=True)
    c.add_argument("--public-read", action="store_true")
    c.add_argument("--content-type", default="text/plain")

    c = sub.add_parser("get")
    c.add_argument("bucket")
    c.add_argument("key")

    c = sub.add_parser("delete")
    c.add_argument("bucket")
    c.add_argument("key")

    c = sub.add_parser("put-many")
    c.add_argument("bucket")
    c.add_argument("keys", nargs="+")
    c.add_argument("--body", default="")

    c = sub.add_parser("create-topic")
    c.add_argument("name")
    c.add_argument("--push-endpoint", required=True)
    c.add_argument("--persistent", choices=["true", "false"], default="false")
    c.add_argument("--opaque-data", default="")
    c.add_argument("--attr", action="append", default=[], metavar="KEY=VALUE",
                   help="another topic attribute, e.g. amqp-exchange=bucket")

    c = sub.add_parser("notify")
    c.add_argument("bucket")
    c.add_argument("--topic-arn", required=True)
    c.add_argument("--events", nargs="+", default=["s3:ObjectCreated:*", "s3:ObjectRemoved:*"])
    c.add_argument("--prefix")
    c.add_argument("--id", default="edgepurge")

    args = p.parse_args()
    s3, sns = clients(args)
    out = {}
    if args.cmd == "create-bucket":
        s3.create_bucket(Bucket=args.bucket)
        if args.public_read:
            policy = json.dumps(PUBLIC_READ_POLICY).replace("{bucket}", args.bucket)
            s3.put_bucket_policy(Bucket=args.bucket, Policy=policy)
        out = {"bucket": args.bucket}
    elif args.cmd == "put":
        kw = dict(Bucket=args.bucket, Key=args.key, Body=args.body.encode(),
                  ContentType=args.content_type)
        if args.public_read:
            kw["ACL"] = "public-read"
        t0 = time.monotonic()
        r = s3.put_object(**kw)
        out = {"seconds": time.monotonic() - t0, "finished_at": time.time(),
               "etag": r.get("ETag", "").strip('"')}
    elif args.cmd == "put-many":
        for key in args.keys:
            s3.put_object(Bucket=args.bucket, Key=key, Body=args.body.encode())
        out = {"put": len(args.keys)}
    elif args.cmd == "get":
        r = s3.get_object(Bucket=args.bucket, Key=args.key)
        out = {"body": r["Body"].read().decode("utf-8", "replace")}
    elif args.cmd == "delete":
        s3.delete_object(Bucket=args.bucket, Key=args.key)
        out = {"deleted": args.key}
    elif args.cmd == "create-topic":
        attrs = {"push-endpoint": args.push_endpoint, "persistent": args.persistent}
        if args.opaque_data:
            attrs["OpaqueData"] = args.opaque_data
        for kv in args.attr:
            k, sep, v = kv.partition("=")
            if not sep:
                raise SystemExit(f"--attr {kv!r}: expected KEY=VALUE")
            attrs[k] = v
        out = {"arn": sns.create_topic(Name=args.name, Attributes=attrs)["TopicArn"]}
    elif args.cmd == "notify":
        cfg = {"Id": args.id, "TopicArn": args.topic_arn, "Events": args.events}
        if args.prefix:
            cfg["Filter"] = {"Key": {"FilterRules": [{"Name": "prefix", "Value": args.prefix}]}}
        s3.put_bucket_notification_configuration(
            Bucket=args.bucket, NotificationConfiguration={"TopicConfigurations": [cfg]})
        out = {"bucket": args.bucket, "topic_arn": args.topic_arn}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # one readable line for the Rust side's panic message
        print("s3ctl: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(1)
