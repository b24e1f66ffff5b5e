"""Running the whole service on one machine: ``python -m app.local`` (``make run``,
:mod:`.run`) and the process supervisor it and the test fixtures share (:mod:`.stack`: Redis,
Chroma, the Flow emulator, API and workers as child processes), and the connection file
they write for the ops commands' ``--stack local`` (:mod:`.stack_file`).

The outermost layer: it may import anything in ``app``; nothing in ``app`` imports it.
"""
