// /docs: Swagger UI (the swagger-ui-bundle-v2 package's files, served by the gateway) on the
// contract this gateway serves. "Try it out" goes to this gateway: the page's own origin replaces
// the contract's example server. The caller key typed into "Authorize" stays in this page's
// memory (persistAuthorization off: nothing is written to the browser's storage).
"use strict";
(function () {
  const here = new URL(".", document.baseURI);
  const origin = here.href.replace(/\/$/, "");
  const target = document.getElementById("swagger-ui");
  fetch(new URL("openapi.json", here), { headers: { Accept: "application/json" } })
    .then((answer) => {
      if (!answer.ok) throw new Error(`GET openapi.json: ${answer.status}`);
      return answer.json();
    })
    .then((spec) => {
      spec.servers = [{ url: origin, description: "This gateway" }];
      window.ui = SwaggerUIBundle({
        spec,
        domNode: target,
        deepLinking: true,
        filter: true,
        displayOperationId: true,
        displayRequestDuration: true,
        showCommonExtensions: true,
        requestSnippetsEnabled: true,
        persistAuthorization: false,
        defaultModelsExpandDepth: 0,
        docExpansion: "list",
        tryItOutEnabled: false,
        validatorUrl: null, // no badge fetched from elsewhere
        presets: [SwaggerUIBundle.presets.apis],
        layout: "BaseLayout",
      });
    })
    .catch((error) => {
      target.textContent = `The contract could not be loaded: ${error.message}`;
    });
})();
