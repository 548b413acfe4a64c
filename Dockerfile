# gitops-guard admission webhook image.
#
#   docker build -t gitops-guard:0.1.0 .
#
# Three stages: `build` compiles TypeScript with the dev dependencies, `deps` installs the
# production dependencies only (from the lockfile), and the runtime stage copies the two
# together onto a small Node.js 20 base, running as a non-root numeric user (so the kubelet can
# enforce runAsNonRoot). test/dockerfile.test.ts replays these steps without Docker.

FROM node:20-alpine AS build
WORKDIR /src
COPY package.json package-lock.json .npmrc ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:20-alpine AS deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:20-alpine AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json ./
COPY rules ./rules
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
# The base image's unprivileged "node" user, by number.
USER 1000:1000
EXPOSE 8443
ENTRYPOINT ["node", "/app/dist/cli/main.js", "serve"]
