"""Training: distribution strategy, optimizer, callbacks and the ``model.fit`` driver."""
