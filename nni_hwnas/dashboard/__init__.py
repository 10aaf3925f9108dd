"""A multi-objective dashboard beside NNI's web UI (which shows only ``default``).

``snapshot`` turns trial rows into the one JSON document every view draws from; ``sources``
reads rows live from NNI's REST API, from NNI's database or from a results directory; ``page``
renders the HTML (Plotly.js bundled from the ``plotly`` wheel, no CDN); ``server`` serves it with
live updates; ``browser`` drives headless Chromium for the tests and the benchmark.
"""
