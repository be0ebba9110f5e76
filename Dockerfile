# Keel broker image for the docker-compose failover drill.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json turbo.json tsconfig.base.json tsconfig.json biome.json ./
COPY packages ./packages
COPY migrations ./migrations
RUN npm ci --no-audit --no-fund && npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app /app
EXPOSE 61616 61613 8161
ENTRYPOINT ["node", "packages/cli/dist/main.js"]
CMD ["broker"]
