export { CapturedCredentials } from './captured-credentials.js';
export type { CapturedCredentialsOptions } from './captured-credentials.js';
export { credentialOf } from './auth-config.js';
export type { CriAuthConfig } from './auth-config.js';
export { IMAGE_SERVICE, IMAGE_SERVICE_METHODS, methodPath } from './image-service-methods.js';
export { decodePullImage } from './pull-request.js';
export { startCriProxy } from './image-service-proxy.js';
export type { CriProxy, CriProxyOptions } from './image-service-proxy.js';
