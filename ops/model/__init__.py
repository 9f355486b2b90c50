"""The VLM: loading, training, inference, serving and zero-shot API clients."""
