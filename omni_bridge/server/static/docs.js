// Swagger UI for /docs. A file of the service rather than an inline script, so the page's policy can allow
// scripts from 'self' only. The description is read relative to the page (a path prefix keeps working).
"use strict";
window.ui = SwaggerUIBundle({
  url: new URL("openapi.json", document.baseURI).href,
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  deepLinking: true,
  // Nothing leaves the service: no badge from the public validator.
  validatorUrl: null,
  // The service key typed into "Authorize" lives only as long as the tab, never in localStorage.
  persistAuthorization: false,
  displayRequestDuration: true,
  tryItOutEnabled: false,
});
