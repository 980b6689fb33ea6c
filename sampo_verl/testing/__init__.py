"""Test helpers shipped with the package: a scripted stand-in for verl's LLM server."""
