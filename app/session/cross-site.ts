/**
 * Cross-site request refusal for routes that change a session (Fetch Metadata resource isolation, as
 * the OWASP CSRF cheat sheet describes). Browsers mark every request with `Sec-Fetch-Site`; a request
 * another site started (a form it submits, a link on it, an image it embeds) says `cross-site`, and
 * could otherwise end or change the user's session with the user's own cookie. Those get 403 before
 * the session is touched. Requests without the header (curl, scripts, old browsers) and those a user
 * starts (typed URL, bookmark: `none`) or the site itself (`same-origin`, `same-site`) go through, as in
 * the seed. SameSite=Lax cookies alone do not cover this: a top-level link still carries them.
 */
import type { Context } from 'koa';

export function isCrossSite(ctx: Context): boolean {
  return ctx.get('Sec-Fetch-Site') === 'cross-site';
}

export function refuseCrossSite(ctx: Context): void {
  ctx.status = 403;
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { error: 'Forbidden', message: 'Another site cannot change this session.' };
}
