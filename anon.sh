#!/bin/sh
awk '/^Rss:/{r+=$2} /^Anonymous:/{a+=$2} END{print "rss="r"kB anon="a"kB"}' /proc/$(cat /tmp/redteam_http/daemon.pid)/smaps
