#!/usr/bin/env python3
"""SQS and S3 on a moto server, for the SQS source tests (boto3, dummy credentials).

  sqsctl.py ENDPOINT create-queue NAME            -> prints the queue URL
  sqsctl.py ENDPOINT s3-to-sqs BUCKET QUEUE_URL   -> bucket notifications (created, removed) to the queue
  sqsctl.py ENDPOINT put BUCKET KEY               -> uploads an object (moto notifies the queue)
  sqsctl.py ENDPOINT send QUEUE_URL BODY          -> sends a raw message
  sqsctl.py ENDPOINT counts QUEUE_URL             -> {"visible": n, "inflight": m}
  sqsctl.py ENDPOINT drain QUEUE_URL              -> every body in the queue, as a JSON list (deleted)
"""
import json
import sys

import boto3

endpoint, command, *args = sys.argv[1:]
kw = dict(endpoint_url=endpoint, region_name="us-east-1",
          aws_access_key_id="AKIDTESTEXAMPLE", aws_secret_access_key="test-secret")
sqs = boto3.client("sqs", **kw)
s3 = boto3.client("s3", **kw)

if command == "create-queue":
    print(sqs.create_queue(QueueName=args[0])["QueueUrl"])
elif command == "s3-to-sqs":
    bucket, queue_url = args
    s3.create_bucket(Bucket=bucket)
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "QueueConfigurations": [{"Id": "edgepurge", "QueueArn": arn,
                                 "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}]})
elif command == "put":
    s3.put_object(Bucket=args[0], Key=args[1], Body=b"v1")
elif command == "send":
    sqs.send_message(QueueUrl=args[0], MessageBody=args[1])
elif command == "counts":
    a = sqs.get_queue_attributes(QueueUrl=args[0], AttributeNames=["All"])["Attributes"]
    print(json.dumps({"visible": int(a["ApproximateNumberOfMessages"]),
                      "inflight": int(a["ApproximateNumberOfMessagesNotVisible"])}))
elif command == "drain":
    out = []
    while True:
        msgs = sqs.receive_message(QueueUrl=args[0], MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not msgs:
            break
        for m in msgs:
            out.append(m["Body"])
            sqs.delete_message(QueueUrl=args[0], ReceiptHandle=m["ReceiptHandle"])
    print(json.dumps(out))
else:
    sys.exit(f"sqsctl: unknown command {command}")
