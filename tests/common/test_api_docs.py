"""The interactive API documentation works without internet access: its page loads Swagger UI from the
project's own static files, which are served."""

import re

from django.test import Client

ASSET = re.compile(r'(?:src|href)="([^"]*)"')


def test_the_docs_page_loads_only_assets_served_by_the_project():
    client = Client()
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assets = sorted(ASSET.findall(html))
    assert assets == [
        "/static/drf_spectacular_sidecar/swagger-ui-dist/favicon-32x32.png",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-standalone-preset.js",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css",
    ]
    assert "https:" not in html and "http:" not in html
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert b"".join(response.streaming_content), asset
    assert 'url: "\u002fapi\u002fschema\u002f"' in html  # the schema, from this server
