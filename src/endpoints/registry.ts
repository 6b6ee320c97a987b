import { SharedRegistry } from '../shared.js';
import type { EndpointSource } from './types.js';

/** The endpoint sources of this process: one per watched Service or static target set. */
export const sources = new SharedRegistry<EndpointSource>((source) => source.close());
