export { RecordingLayerReader } from './read-recorder.js';
export type { RecordingDone } from './read-recorder.js';
export {
  MAX_PROFILE_RANGES, PROFILE_GAP_BYTES, boundRanges, coveredBytes, decodeProfile, encodeProfile, mergeRanges, profileKey,
} from './start-profile.js';
export { StartProfiles } from './start-profiles.js';
export type { StartProfilesOptions } from './start-profiles.js';
