"""The monitoring read side: every query and computation the dashboard's pages show.

One module per page (:mod:`overview`, :mod:`positions`, :mod:`orders`, :mod:`risk`,
:mod:`models`, :mod:`health`, :mod:`research`), plus :mod:`access` (the read-only engine and
the login check), :mod:`prices` (closes from the rollups or raw bars) and :mod:`fmt` (numbers
for people). Pages in ``dashboards/`` only call these and draw.
"""
