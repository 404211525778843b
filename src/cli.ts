/**
 * @module cli
 * The `dmasim` command.
 */
import { defaultScenario } from './scenarios.ts';

const USAGE = `usage: dmasim <command>

commands:
  run            run the default simulation and print its report
  help           this text
`;

function main(argv: string[]): number {
  const [cmd = 'help'] = argv;
  switch (cmd) {
    case 'run':
      process.stdout.write(`${defaultScenario()}\n`);
      return 0;
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return 0;
    default:
      process.stderr.write(`dmasim: unknown command '${cmd}'\n${USAGE}`);
      return 2;
  }
}

process.exitCode = main(process.argv.slice(2));
