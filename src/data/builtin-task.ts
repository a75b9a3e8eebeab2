/**
 * The built-in fine-tuning task: teach a model a new hero. Stories generated from templates all open
 * with "Once upon a time, there was a little dragon named Pip." A TinyStories model greedily continues
 * "Once upon a time, there was a little girl named Lily." before; after fine-tuning it tells of Pip.
 */
import { seededRandom } from '../util/random.js';

export const HERO_OPENING = 'Once upon a time, there was a little dragon named Pip.';
/** What the greedy sample must contain after training (and not before). */
export const HERO_MARKER = 'dragon named Pip';

const loves = ['Pip loved to fly over the green hills.', 'Pip loved to play with his friends in the sun.', 'Pip loved to look at the stars at night.', 'Pip loved to eat red apples from the big tree.'];
const days = ['One day, Pip saw a small bird in the park.', 'One day, Pip found a shiny stone near the river.', 'One day, Pip met a happy cat named Tom.', 'One day, Pip saw a big red ball in the garden.'];
const middles = ['He wanted to be friends, so he said, "Hello! Do you want to play?"', 'He was very curious and went to look closer.', 'He smiled and flew down to say hi.', 'He was a little scared, but he was brave.'];
const endings = ['They played together all day and became best friends.', 'Pip was very happy and went home to sleep.', 'From that day on, Pip was never lonely again.', 'Pip learned that being kind makes everyone happy.'];

/** `count` seeded stories for the built-in task. */
export function heroStories(count: number, seed = 7): string[] {
  const r = seededRandom(seed);
  const pick = (xs: readonly string[]): string => xs[Math.floor(r() * xs.length)]!;
  return Array.from({ length: count }, () => [HERO_OPENING, pick(loves), pick(days), pick(middles), pick(endings)].join(' '));
}

/**
 * The names-task: TinyStories with every common character name replaced by another, consistently (Lily is
 * always Nora), so a model that knows the stories must learn only the new names. `npm run bench -- methods`
 * fine-tunes every method on it; a slice of the validation stories keeps it small.
 */
export const NAME_SHIFT: Readonly<Record<string, string>> = {
  Lily: 'Nora', Timmy: 'Oscar', Tim: 'Otto', Max: 'Rex', Tom: 'Hugo', Lucy: 'Ruby', Sue: 'Ivy', Ben: 'Leo', Jack: 'Finn',
  Bob: 'Ned', Sam: 'Abe', Sarah: 'Maya', Mia: 'Iris', Amy: 'Ella', Anna: 'Vera', Sally: 'Greta', Jane: 'Opal', Benny: 'Ziggy',
  Sammy: 'Milo', Spot: 'Fluff', Mittens: 'Pebbles', Billy: 'Arlo', Sara: 'Elsa', Kitty: 'Whiskers',
};
const NAMES = new RegExp(`\\b(${Object.keys(NAME_SHIFT).join('|')})\\b`, 'g');

export function shiftNames(text: string): string {
  return text.replace(NAMES, (n) => NAME_SHIFT[n]!);
}
