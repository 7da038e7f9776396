/**
 * Types for `ctx.session`. koa-session 7 does not add `session` to Koa 3's context type, so the app
 * declares it here, with the fields this app keeps. Add your own fields to SessionData.
 */

/**
 * What the app keeps in a session: add your fields here (the seed adds its `time` from
 * app/seed/routes.ts, by declaration merging). Field names must not start with `_` or be one of
 * koa-session's own (toJSON, save, regenerate, isNew, maxAge, …) or `constructor`: see
 * app/session/stored-session.ts.
 */
export interface SessionData {}

/** The session object koa-session puts on the context: your data plus its methods. */
export type Session = SessionData & {
  /** True when the session was made in this request. */
  readonly isNew: boolean;
  /** True when it holds any data (new, empty sessions are never stored). */
  readonly populated: boolean;
  /** Your data only, without koa-session's internal `_` fields. */
  toJSON(): SessionData;
  /** Stores the session now, even if unchanged. */
  save(): Promise<void>;
  /** Gives the session a new id (after login or any privilege change): the old id stops working. */
  regenerate(): Promise<void>;
};

declare module 'koa' {
  interface DefaultContext {
    /** The request's session; set it to null to destroy it (store entry and cookie). */
    get session(): Session;
    set session(value: SessionData | null);
  }
}
