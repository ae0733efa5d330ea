async def test_me_anonymous(env) -> None:
    r = await env.client.get("/auth/me")
    assert r.status_code == 401, r.text
    r = await env.client.get("/auth/login")
    assert r.status_code == 200, r.text
