#!/usr/bin/env python3
# genman.py IN OUT VERSION SYSCONFDIR XDPDIR [--keys RCPTGATED]: fill in a
# man page's date, @VERSION@, @SYSCONFDIR@ and @XDPDIR@, and @KEYS@ with
# `RCPTGATED --man-keys` (the configuration key table of control/config.c
# as man(7) markup).
import os, subprocess, sys, time

src, out, version, sysconfdir, xdpdir = sys.argv[1:6]
text = open(src, encoding="utf-8").read()
# the page's date: SOURCE_DATE_EPOCH (reproducible builds) or today
when = time.gmtime(int(os.environ.get("SOURCE_DATE_EPOCH", time.time())))
text = text.replace('"" "rcptgate', '"%s" "rcptgate' % time.strftime("%Y-%m-%d", when), 1)
text = text.replace("@VERSION@", version).replace("@SYSCONFDIR@", sysconfdir)
text = text.replace("@XDPDIR@", xdpdir)
if "@KEYS@" in text:
    if sys.argv[6:7] != ["--keys"]:
        sys.exit("genman: the page has @KEYS@: give --keys RCPTGATED")
    keys = subprocess.run([sys.argv[7], "--man-keys"], check=True,
                          capture_output=True, text=True).stdout
    if ".TP\n.B " not in keys:
        sys.exit(f"genman: {sys.argv[7]} --man-keys printed no key")
    text = text.replace("@KEYS@\n", keys)
open(out, "w", encoding="utf-8").write(text)
