"""Training of learned motion generators on prepared datasets (``avatar prepare``)."""
