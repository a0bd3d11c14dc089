"""The API's resources, one module per resource; each controller only decodes, calls one use
case and encodes. Rules and permissions are the core's."""
