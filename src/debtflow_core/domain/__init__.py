"""Entities and value objects of the collections domain."""
