vcl 4.1;
# Varnish 7.1 edge cache for the test kit (crates/testkit/src/caches.rs fills in @ORIGIN_HOST@
# and @ORIGIN_PORT@). Cache key: Host + URL (built-in vcl_hash). GET responses are kept 1 h.
#   PURGE <path>                     -> drops that object for this Host (200)
#   BAN, X-Ban-Url: <regex on path>  -> invalidates this Host's objects whose path matches (200)
#   PURGEKEY, xkey-purge: "k1 k2"    -> invalidates objects tagged with those keys (200)
# Purges from clients outside acl purgers get 405. X-Cache: HIT|MISS on every response.
# Test fixture: PURGE of a path with a segment "busy-node" gets 503 + Retry-After: 2 (a node
# that refuses some purges while it is overloaded).

import std;
import xkey;

backend origin {
    .host = "@ORIGIN_HOST@";
    .port = "@ORIGIN_PORT@";
}

acl purgers {
    "127.0.0.1";
    "::1";
}

sub vcl_recv {
    if (req.method == "PURGE" || req.method == "BAN" || req.method == "PURGEKEY") {
        if (client.ip !~ purgers) {
            return (synth(405, req.method + " not allowed from " + client.ip));
        }
    }
    if (req.method == "PURGE" && req.url ~ "/busy-node/") {
        return (synth(503, "busy, try later"));
    }
    if (req.method == "PURGE") {
        return (purge);
    }
    if (req.method == "BAN") {
        if (!req.http.X-Ban-Url) {
            return (synth(400, "X-Ban-Url header required"));
        }
        # Unquoted operands: a ban added from VCL keeps quotes as part of the value (7.1), so
        # the regex must not contain blanks (URL paths are percent-encoded anyway).
        if (req.http.X-Ban-Url ~ "\s") {
            return (synth(400, "X-Ban-Url must not contain blanks"));
        }
        if (std.ban("obj.http.X-Url ~ " + req.http.X-Ban-Url +
                    " && obj.http.X-Host == " + req.http.host)) {
            return (synth(200, "Ban added"));
        }
        return (synth(400, "bad ban: " + std.ban_error()));
    }
    if (req.method == "PURGEKEY") {
        if (!req.http.xkey-purge) {
            return (synth(400, "xkey-purge header required"));
        }
        set req.http.n-gone = xkey.purge(req.http.xkey-purge);
        return (synth(200, "Invalidated " + req.http.n-gone + " objects"));
    }
    # The Host the client asked for (part of the cache key) is kept for bans; the origin
    # itself is always asked with its own address as Host.
    set req.http.X-Edge-Host = req.http.host;
}

sub vcl_backend_fetch {
    set bereq.http.host = "@ORIGIN_HOST@:@ORIGIN_PORT@";
}

sub vcl_backend_response {
    # Ban-lurker friendly bans match on these object headers, not on req.*.
    set beresp.http.X-Url = bereq.url;
    set beresp.http.X-Host = bereq.http.X-Edge-Host;
    set beresp.ttl = 1h;
    set beresp.grace = 0s;
    # Surrogate key: the first path segment after the bucket (/bucket/img/a.png -> img),
    # unless the origin sent its own xkey header.
    if (!beresp.http.xkey && bereq.url ~ "^/[^/]+/[^/?]+/") {
        set beresp.http.xkey = regsub(bereq.url, "^/[^/]+/([^/?]+)/.*$", "\1");
    }
}

sub vcl_deliver {
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
    unset resp.http.X-Url;
    unset resp.http.X-Host;
}

sub vcl_synth {
    if (resp.status == 503) {
        set resp.http.Retry-After = "2";
    }
    set resp.http.Content-Type = "text/plain; charset=utf-8";
    set resp.body = resp.reason + {"
"};
    return (deliver);
}
