"""The floor of the latency benchmark: a bare WSGI "hello" served by the same gunicorn settings
as glucast (bench/forecast_latency.py), so framework + work can be told apart from the server
and the loopback."""


def application(environ, start_response):
    body = b'{"hello": "world"}'
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
