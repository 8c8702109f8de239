// Swagger UI over this service's own contract, every asset served by the service itself.
window.addEventListener("DOMContentLoaded", function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-spec"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,          // never ask a validator elsewhere
    tryItOutEnabled: false,
    persistAuthorization: false, // the key stays in this page only
    displayRequestDuration: true,
    defaultModelsExpandDepth: 0
  });
});
