"""The core every package stands on: typed settings (:mod:`.settings`), the exception
hierarchy (:mod:`.errors`), system events in ``audit.system_events`` (:mod:`.events`) and text
in and out (:mod:`.text`).

May import: third-party libraries only.
"""
