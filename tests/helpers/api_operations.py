"""The v2 requests the provider's client sends, by route (as the emulator records them).

The contract test (``integration/test_contract.py``) refuses a recorded v2 request whose route is not listed
here, and ``unit/test_docs.py`` requires the operation of each one to be marked covered in ``docs/features.md``:
a new call cannot reach the client without its row in the feature table.
"""

from __future__ import annotations

#: ``METHOD /wiki/api/v2/...`` routes, path parameters as the OpenAPI document names them.
CLIENT_V2_ROUTES: frozenset[str] = frozenset(
    {
        "GET /wiki/api/v2/spaces",
        "GET /wiki/api/v2/spaces/{id}",
        "GET /wiki/api/v2/pages",
        "POST /wiki/api/v2/pages",
        "GET /wiki/api/v2/pages/{id}",
        "PUT /wiki/api/v2/pages/{id}",
        "DELETE /wiki/api/v2/pages/{id}",
        "GET /wiki/api/v2/pages/{id}/labels",
        "GET /wiki/api/v2/pages/{id}/attachments",
        "GET /wiki/api/v2/pages/{id}/footer-comments",
        "POST /wiki/api/v2/footer-comments",
        "GET /wiki/api/v2/pages/{id}/children",
        "GET /wiki/api/v2/pages/{id}/direct-children",
        "GET /wiki/api/v2/folders/{id}/direct-children",
        "GET /wiki/api/v2/pages/{id}/descendants",
        "GET /wiki/api/v2/folders/{id}/descendants",
        "POST /wiki/api/v2/folders",
        "GET /wiki/api/v2/folders/{id}",
    }
)
