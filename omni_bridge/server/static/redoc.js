// ReDoc for /redoc, as a file of the service so the page's policy can allow scripts from 'self' only.
"use strict";
Redoc.init(new URL("openapi.json", document.baseURI).href, { hideDownloadButton: false }, document.getElementById("redoc"));
