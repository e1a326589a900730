// The toy pipeline of ezmsg, ported: an LFO modulates the amplitude of a sine, a logger prints
// each block. The sine runs in a worker thread and the logger in a process of its own; the
// settings of the sine are changed while it runs. Workers and processes import this module
// again: everything above `start()` builds the same system in each of them.
import { Collection, Unit, connect, input, output, setting, start } from "plexus/pipeline";

interface Block {
  seq: number;
  carrier: number;
  samples: Float64Array;
}

/** A low-frequency oscillator: sin(2π·freq·t), `rate` times a second. */
class LFO extends Unit.with({ freq: setting.number(0.5, { min: 0 }), rate: setting.number(100, { min: 1, max: 10_000 }) }) {
  readonly OUTPUT = output<number>();
  override initialize(): void {
    this.produce(this.OUTPUT, (signal) => this.generate(signal));
  }
  private async *generate(signal: AbortSignal): AsyncGenerator<number> {
    while (!signal.aborted) {
      yield Math.sin(2 * Math.PI * this.settings.freq * (performance.now() / 1000));
      await new Promise((r) => setTimeout(r, 1000 / this.settings.rate));
    }
  }
}

/** A sine of `carrier` Hz in blocks of `size` samples, its amplitude set by the latest LFO value. */
class ModulatedSine extends Unit.with({ carrier: setting.number(10, { min: 0 }), size: setting.int(64, { min: 1 }), rate: setting.number(200, { min: 1 }) }) {
  readonly AMPLITUDE = input<number>({ backpressure: "drop-oldest", queue: 1 }); // only the latest value matters
  readonly OUTPUT = output<Block>();
  private amplitude = 1;
  override initialize(): void {
    this.subscribe(this.AMPLITUDE, (a) => void (this.amplitude = a));
    this.produce(this.OUTPUT, (signal) => this.blocks(signal));
  }
  override onSettings(next: { carrier: number }, previous: { carrier: number }): void {
    console.log(`SYS/SINE: carrier ${previous.carrier} -> ${next.carrier} Hz`);
  }
  private async *blocks(signal: AbortSignal): AsyncGenerator<Block> {
    for (let seq = 1; !signal.aborted; seq++) {
      const { carrier, size, rate } = this.settings;
      const samples = new Float64Array(size);
      for (let i = 0; i < size; i++) samples[i] = this.amplitude * Math.sin((2 * Math.PI * carrier * (seq * size + i)) / (size * rate));
      yield { seq, carrier, samples };
      await new Promise((r) => setTimeout(r, 1000 / rate));
    }
  }
}

/** Prints the first `count` blocks, then ends the pipeline. */
class Logger extends Unit.with({ count: setting.int(20, { min: 1 }) }) {
  readonly INPUT = input<Block>();
  private n = 0;
  override initialize(): void {
    this.subscribe(this.INPUT, ({ seq, carrier, samples }) => {
      if (this.n >= this.settings.count) return;
      const peak = samples.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
      console.log(`block ${seq}: ${samples.length} samples, carrier ${carrier} Hz, peak ${peak.toFixed(2)}`);
      if (++this.n === this.settings.count) this.terminate();
    });
  }
}

class System extends Collection {
  readonly LFO = new LFO({ freq: 0.2 });
  readonly SINE = new ModulatedSine().place("worker");
  readonly LOGGER = new Logger().place("process");
  override connections() {
    return [connect(this.LFO.OUTPUT, this.SINE.AMPLITUDE), connect(this.SINE.OUTPUT, this.LOGGER.INPUT)];
  }
}

const runner = await start(new System(), { name: "SYS" }); // in the worker and the process: never returns
await runner.configure("SYS/SINE", { carrier: 20 }); // live, wherever the unit runs
await runner.done; // the logger ends it after 20 blocks
console.log("pipeline stopped");
