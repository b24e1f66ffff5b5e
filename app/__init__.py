"""flowchat: a retrieval-augmented chat service on the CI&T Flow LLM gateway."""
