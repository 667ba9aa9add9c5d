"""Mother nodes: federated scry across remote patina-serve nodes."""
