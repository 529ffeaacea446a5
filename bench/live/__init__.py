"""``bench live``: the face pipeline of ``bench predict`` on a camera, shown in a local web page.

``server`` serves the page and answers its frames over one WebSocket; ``frames`` checks and decodes what
arrives; ``session`` runs one client's frames through the shared pipeline; ``sources`` reads a camera or
video on the machine itself; ``record`` keeps what was shown, only when asked (``--record DIR``).
"""
