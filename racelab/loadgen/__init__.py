"""The load-generation client: it talks to the lab over HTTP and knows nothing of its database."""
