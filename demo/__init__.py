"""The demo portal backend: the people of docs/domain.md section 4 behind the API of section 5.

`demo.world` holds the frozen demo data, `demo.state` the per-app mutable copy,
`demo.assertion` the verifier of the gateway's `X-Portal-Assertion`, `demo.pdf` the
hand-made invoice PDF and `demo.backend` the Starlette app (`python -m demo.backend`).
"""
