// htm bound to Preact's h: tagged templates instead of JSX, so no build step. Text in ${…} is
// set as text nodes (escaped), never parsed as HTML; the console uses no innerHTML anywhere.
import htm from 'htm';
import { h } from 'preact';

export const html = htm.bind(h);
