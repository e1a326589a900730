#!/usr/bin/env node
/**
 * Entry point of the `plexus` command.
 * @module
 */
import { program } from "./program.js";

const cli = program();
if (process.argv.length <= 2) cli.outputHelp();
else await cli.parseAsync(process.argv);
