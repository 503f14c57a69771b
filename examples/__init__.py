"""Worked examples of prunebench plugins (``--plugin examples.<module>``); see the README section
"Your own method, network or data"."""
