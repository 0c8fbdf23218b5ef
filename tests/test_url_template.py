"""`UrlTemplate`, what `GatewayServices.url_template` hands a backend for many URLs of one route."""

from __future__ import annotations

from gateway.calls import UrlTemplate, path_template
from gateway.plugin_api import UrlTemplate as PublicUrlTemplate

PATH = "/v1/products/{productId}/configurations/{configurationId}/results/{format}"


def test_a_template_fills_each_parameter_quoted() -> None:
    """Each parameter is put where the contract's path names it, quoted as one path segment
    (a slash or a space in an id cannot change the route), and the template can be filled
    again with other values; it is the plugin API's `UrlTemplate`."""
    template = UrlTemplate("https://gw.example", path_template(PATH))
    assert (
        template.fill({"productId": "p-1", "configurationId": "c.2~x", "format": "WEB"})
        == "https://gw.example/v1/products/p-1/configurations/c.2~x/results/WEB"
    )
    assert (
        template.fill({"productId": "a/b c", "configurationId": "é?", "format": "WEB"})
        == "https://gw.example/v1/products/a%2Fb%20c/configurations/%C3%A9%3F/results/WEB"
    )
    assert PublicUrlTemplate is UrlTemplate
