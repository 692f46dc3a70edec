/** Shell completion scripts for bash and zsh, made from the command table. */
import type { Command } from "./commands";
import { GLOBAL } from "./commands";

export function completion(shell: "bash" | "zsh", commands: Command[]): string {
  const firsts = [...new Set(commands.map((c) => c.words[0]!))];
  const seconds = new Map<string, string[]>();
  for (const c of commands) if (c.words.length > 1) seconds.set(c.words[0]!, [...(seconds.get(c.words[0]!) ?? []), c.words[1]!]);
  const optionsOf = (c: Command) => [...Object.keys(c.options), ...Object.keys(GLOBAL)].map((o) => `--${o}`).join(" ");
  const cases = commands.map((c) => `    "${c.words.join(" ")}") opts="${optionsOf(c)}" ;;`).join("\n");
  const subs = [...seconds].map(([first, words]) => `    ${first}) words="${words.join(" ")}" ;;`).join("\n");
  const bash = `# guesthouse completion for bash: eval "$(guesthouse completion bash)"
_guesthouse() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" first="\${COMP_WORDS[1]}" second="\${COMP_WORDS[2]}" words="" opts=""
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=( $(compgen -W "${firsts.join(" ")}" -- "$cur") ); return
  fi
  case "$first" in
${subs}
  esac
  if [ "$COMP_CWORD" -eq 2 ] && [ -n "$words" ]; then
    COMPREPLY=( $(compgen -W "$words" -- "$cur") ); return
  fi
  local key="$first"
  [ -n "$words" ] && key="$first $second"
  case "$key" in
${cases}
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=( $(compgen -W "$opts" -- "$cur") )
  else
    COMPREPLY=( $(compgen -f -- "$cur") )
  fi
}
complete -o default -F _guesthouse guesthouse
`;
  if (shell === "bash") return bash;
  return `#compdef guesthouse
# guesthouse completion for zsh: eval "$(guesthouse completion zsh)"
autoload -U +X bashcompinit && bashcompinit
${bash}`;
}
