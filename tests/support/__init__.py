"""Test doubles of outside services that the tests reach over real sockets."""
