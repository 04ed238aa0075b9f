"""The webhook sender's HTTP client (httpx): one POST per attempt, to the address the service
layer checked, with the endpoint's name in Host and in TLS (SNI and the certificate check)."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from services.referrals.service_layer.webhooks import Answer, PostFailed

__all__ = ["HttpxPoster"]


class HttpxPoster:
    """Role: the sender's :class:`~services.referrals.service_layer.webhooks.Poster`."""

    def __init__(self, timeout: float, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.client = httpx.AsyncClient(
            transport=transport,
            timeout=timeout,
            follow_redirects=False,  # a redirect is a failure (Standard Webhooks), and no SSRF
            trust_env=False,  # never through a proxy the environment happens to name
        )

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, sni_hostname: str | None
    ) -> Answer:
        extensions = {"sni_hostname": sni_hostname} if sni_hostname else {}
        try:
            response = await self.client.post(
                url, content=body, headers=dict(headers), extensions=extensions
            )
        except httpx.HTTPError as exc:
            raise PostFailed(f"{type(exc).__name__}: {exc}"[:300]) from exc
        return Answer(response.status_code, response.headers.get("retry-after"))

    async def close(self) -> None:
        await self.client.aclose()
