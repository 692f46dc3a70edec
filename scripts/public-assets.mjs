// Copies the files the dashboard serves as they are from the npm packages that make them
// into public/vendor/ (not kept in git: they come with `npm ci`): the API reference's
// renderer, Swagger UI (swagger-ui-dist), with its licence. Run before `next build`.
import fs from "node:fs";
import path from "node:path";

const FILES = { "swagger-ui-dist": ["swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE"] };

for (const [pkg, files] of Object.entries(FILES)) {
  const from = path.join("node_modules", pkg);
  const to = path.join("public", "vendor", pkg);
  fs.mkdirSync(to, { recursive: true });
  for (const file of files) fs.copyFileSync(path.join(from, file), path.join(to, file));
}
