/**
 * StartupError: a problem the operator must fix before the server can run (a bad setting, an
 * unreadable .env, a store that does not answer, a port that is taken). The server entry prints its
 * message as one line on stderr, with no stack trace, and exits 1. `variable` names the setting to look at.
 */
export class StartupError extends Error {
  readonly variable: string;

  constructor(variable: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'StartupError';
    this.variable = variable;
  }
}
