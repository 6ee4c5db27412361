"""Input and output drift against the reference profile that training wrote (``profile.json``).

``features`` computes per-row features (shared with ``training/profiles.py``, so both sides measure the
same thing), ``psi`` scores a window against the reference, ``window`` keeps recent rows, ``monitor``
ties one model version's window to its gauges. See docs/drift.md.
"""
