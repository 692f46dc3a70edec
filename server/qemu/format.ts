/** Display of an argument array; kept apart from args.ts so pages need no path module. */

/** The command line as a person would type it, for display (each argument quoted if needed). */
export function formatCommandLine(argv: readonly string[]): string {
  return argv.map((arg) => (/^[A-Za-z0-9_./:=,@+-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`)).join(" ");
}
