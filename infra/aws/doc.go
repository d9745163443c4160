// Package aws holds the tests of the AWS target as a whole: the SAM template
// (template.yaml at the module root), the four Lambda binaries under the
// runtime interface emulator, and the acceptance suite against them with
// DynamoDB Local and MinIO as storage. The deployable parts themselves are
// template.yaml, functions/ and shared/app/serverless.
package aws
