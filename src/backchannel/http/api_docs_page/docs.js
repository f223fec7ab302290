// Swagger UI over this node's own OpenAPI document. No request leaves this server:
// validatorUrl null stops Swagger UI asking validator.swagger.io for a badge.
window.ui = SwaggerUIBundle({
  url: new URL("v1/openapi.json", document.baseURI).href,
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  tryItOutEnabled: false,
  persistAuthorization: false,
  defaultModelsExpandDepth: 0,
});
