"""What the web server needs of the services, with no Dash: request limits, sign-in and headers
(``security``), per-person rate limits (``ratelimit``), the users file (``users``) and ``/healthz``
(``health``). The top of the services.
"""
