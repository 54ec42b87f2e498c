"""Publication: products staged, published when QA passes, withdrawn otherwise (publish.py)."""
