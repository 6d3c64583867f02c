#!/usr/bin/env python3
# genman.py IN OUT VERSION SYSCONFDIR [RCPTGATED]: fill in a man page's
# date, @VERSION@ and @SYSCONFDIR@, and @KEYS@ with `RCPTGATED --man-keys` (the
# configuration key table of control/config.c as man(7) markup).
import os, subprocess, sys, time

src, out, version, sysconfdir = sys.argv[1:5]
text = open(src, encoding="utf-8").read()
# the page's date: SOURCE_DATE_EPOCH (reproducible builds) or today
when = time.gmtime(int(os.environ.get("SOURCE_DATE_EPOCH", time.time())))
text = text.replace('"" "rcptgate', '"%s" "rcptgate' % time.strftime("%Y-%m-%d", when), 1)
text = text.replace("@VERSION@", version).replace("@SYSCONFDIR@", sysconfdir)
if "@KEYS@" in text:
    keys = subprocess.run([sys.argv[5], "--man-keys"], check=True,
                          capture_output=True, text=True).stdout
    if ".TP\n.B " not in keys:
        sys.exit(f"genman: {sys.argv[5]} --man-keys printed no key")
    text = text.replace("@KEYS@\n", keys)
open(out, "w", encoding="utf-8").write(text)
