// Linked against one layer's whole library and the layers it may use (see
// CMakeLists.txt): if that layer calls into a layer it may not use, this
// program does not link. It is never run.
int main() { return 0; }
