"""The operators' console: server-rendered HTML pages over the admin operations (functions/console.py serves
them). `markup` builds escaped HTML, `layout` the shared frame and security headers, `sparkline` inline SVG,
`activity` the last hour per mapping; one module per page (`overview`, `details`, `errors`, `records`,
`reconcile`) and `actions` for the buttons."""
