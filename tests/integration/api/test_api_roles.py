"""Every route against every role: the roles below the route's rule are refused (403), the
others get through to the handler (whatever it answers, never a 500), and no token is 401."""

from __future__ import annotations

import re

import pytest

from prism.api.app import served_routes
from prism.api.rules import PUBLIC, ROUTE_ROLES
from prism.api.security import ROLES, role_allows

HTTP_ROUTES = sorted((m, p) for (m, p) in ROUTE_ROLES if m != "WS")


def concrete(path: str) -> str:
    """A path template with placeholder values (routes answer 4xx for unknown ones)."""
    return re.sub(r"\{[^}]+\}", "nothing-here", path)


def test_every_route_of_the_app_has_exactly_one_rule_in_the_table(app):
    assert served_routes(app) == set(ROUTE_ROLES)


@pytest.mark.parametrize(("method", "path"), HTTP_ROUTES)
def test_each_role_is_allowed_or_refused_as_the_table_says(client, auth, method, path):
    needed = ROUTE_ROLES[(method, path)]
    for role in ROLES:
        response = client.request(method, concrete(path), headers=auth(role))
        if needed == PUBLIC or role_allows(role, needed):
            assert response.status_code not in (401, 403, 500), (role, response.text)
        else:
            assert response.status_code == 403, (role, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert needed in response.json()["detail"]
    anonymous = client.request(method, concrete(path))
    if needed == PUBLIC:
        assert anonymous.status_code not in (401, 403, 500)
    else:
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == "Bearer"
