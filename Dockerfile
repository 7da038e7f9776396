# Production image: Node strips the TypeScript types itself, so there is no build step and no loader;
# only production dependencies are installed. Build: docker build -t koa-session-starter .
FROM node:26-slim

ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8199
WORKDIR /app

# Dependencies first, so a code change does not reinstall them.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY app ./app
COPY config ./config

# The official image's unprivileged user.
USER node
EXPOSE 8199

# Node itself (the slim image has no curl): 0 when /healthz answers 200 within 2 s.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8199) + '/healthz', { signal: AbortSignal.timeout(2000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# Exec form: node is PID 1 and receives SIGTERM itself (npm start would not pass it on).
CMD ["node", "app/main.ts"]
